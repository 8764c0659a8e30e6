{{ config(partition_by=hourly_partition_by('event_hour')) }}

with

events as (

    select * from {{ ref('stg_kafka__click_events') }}
    {% if is_incremental() -%}
        where {{ incremental_hours_filter('event_hour') }}
    {%- endif %}

),

hourly as (

    select
        event_hour,
        video_id,
        count(case when event_type = 'impression' then 1 end) as impressions,
        count(case when event_type = 'click' then 1 end) as clicks,
        count(case when event_type = 'conversion' then 1 end) as conversions,
        count(distinct user_id) as unique_users,
        count(case when is_late then 1 end) as late_events

    from events
    group by event_hour, video_id

),

final as (

    select
        event_hour,
        video_id,
        impressions,
        clicks,
        conversions,
        {{ safe_divide('clicks', 'impressions') }} as ctr,
        {{ safe_divide('conversions', 'clicks') }} as conversion_rate,
        unique_users,
        late_events

    from hourly

)

select * from final
