with

source as (

    select * from {{ source('kafka', 'click_events') }}

),

renamed as (

    select
        ----------  ids
        cast(event_id as string) as event_id,
        cast(user_id as string) as user_id,
        cast(session_id as string) as session_id,
        cast(video_id as string) as video_id,

        ----------  event
        cast(lower(event_type) as string) as event_type,
        cast(button_id as string) as button_id,
        cast(playback_position_s as {{ float_type() }}) as playback_position_s,
        cast(surface as string) as surface,
        cast(rec_slot as int64) as rec_slot,
        cast(model_version as string) as model_version,
        cast(conversion_type as string) as conversion_type,
        cast(device as string) as device,
        cast(app_version as string) as app_version,
        cast(properties as string) as properties,

        ----------  enrichment
        cast(user_country as string) as user_country,
        cast(user_tier as string) as user_tier,
        cast(user_language as string) as user_language,

        ----------  time
        cast(event_time as timestamp) as event_time,
        {{ hour_floor('cast(event_time as timestamp)') }} as event_hour,
        cast(event_time as date) as event_date,
        cast(received_at as timestamp) as received_at,
        coalesce(cast(is_late as bool), false) as is_late,

        ----------  kafka lineage
        cast(kafka_timestamp as timestamp) as kafka_timestamp,
        cast(kafka_partition as int64) as kafka_partition,
        cast(kafka_offset as int64) as kafka_offset,
        cast(partition_hour as timestamp) as partition_hour

    from source

),

ranked as (

    -- At-least-once delivery can put an event in Kafka twice: keep its earliest record.
    select
        *,
        row_number() over (
            partition by event_id
            order by kafka_timestamp, kafka_partition, kafka_offset
        ) as record_rank

    from renamed

),

deduplicated as (

    select
        event_id,
        user_id,
        session_id,
        video_id,
        event_type,
        button_id,
        playback_position_s,
        surface,
        rec_slot,
        model_version,
        conversion_type,
        device,
        app_version,
        properties,
        user_country,
        user_tier,
        user_language,
        event_time,
        event_hour,
        event_date,
        received_at,
        is_late,
        kafka_timestamp,
        kafka_partition,
        kafka_offset,
        partition_hour

    from ranked
    where record_rank = 1

)

select * from deduplicated
