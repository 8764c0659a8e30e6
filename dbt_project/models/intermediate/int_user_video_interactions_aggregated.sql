with

events as (

    select * from {{ ref('stg_kafka__click_events') }}

),

aggregated as (

    select
        user_id,
        video_id,
        count(case when event_type = 'impression' then 1 end) as impressions,
        count(case when event_type = 'click' then 1 end) as clicks,
        count(case when event_type = 'conversion' then 1 end) as conversions,
        min(event_time) as first_event_time,
        max(event_time) as last_event_time,
        -- Same weights as the trending score, without decay: implicit feedback for the recommender.
        sum({{ event_weight('event_type') }}) as interaction_strength

    from events
    group by user_id, video_id

)

select * from aggregated
