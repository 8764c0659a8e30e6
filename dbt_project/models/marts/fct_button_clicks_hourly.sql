{{ config(partition_by=hourly_partition_by('event_hour')) }}

with

events as (

    select * from {{ ref('stg_kafka__click_events') }}
    {% if is_incremental() -%}
        where {{ incremental_hours_filter('event_hour') }}
    {%- endif %}

),

clicks as (

    select
        event_hour,
        video_id,
        coalesce(button_id, 'unknown') as button_id

    from events
    where event_type = 'click'

),

final as (

    select
        event_hour,
        video_id,
        button_id,
        count(*) as clicks

    from clicks
    group by event_hour, video_id, button_id

)

select * from final
