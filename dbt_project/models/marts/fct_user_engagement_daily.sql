with

events as (

    select * from {{ ref('stg_kafka__click_events') }}

),

sessions as (

    select * from {{ ref('int_sessions_summarised') }}

),

daily_events as (

    select
        event_date,
        user_id,
        count(case when event_type = 'impression' then 1 end) as impressions,
        count(case when event_type = 'click' then 1 end) as clicks,
        count(case when event_type = 'conversion' then 1 end) as conversions,
        count(distinct case when event_type = 'click' then video_id end) as videos_watched

    from events
    group by event_date, user_id

),

daily_sessions as (

    select
        session_date,
        user_id,
        count(*) as sessions

    from sessions
    group by session_date, user_id

),

final as (

    select
        daily_events.event_date,
        daily_events.user_id,
        coalesce(daily_sessions.sessions, 0) as sessions,
        daily_events.impressions,
        daily_events.clicks,
        daily_events.conversions,
        daily_events.videos_watched,
        {{ safe_divide('daily_events.clicks', 'daily_events.impressions') }} as ctr

    from daily_events
    left join daily_sessions
        on
            daily_events.event_date = daily_sessions.session_date
            and daily_events.user_id = daily_sessions.user_id

)

select * from final
