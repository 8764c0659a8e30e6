with

events as (

    select * from {{ ref('stg_kafka__click_events') }}

),

ordered as (

    select
        *,
        row_number() over (
            partition by session_id
            order by event_time, event_id
        ) as event_sequence

    from events

),

first_events as (

    select
        session_id,
        user_id,
        video_id as first_video_id,
        surface as entry_surface,
        device

    from ordered
    where event_sequence = 1

),

session_totals as (

    select
        session_id,
        min(event_time) as session_start,
        max(event_time) as session_end,
        count(*) as events,
        count(case when event_type = 'impression' then 1 end) as impressions,
        count(case when event_type = 'click' then 1 end) as clicks,
        count(case when event_type = 'conversion' then 1 end) as conversions,
        count(distinct video_id) as videos

    from events
    group by session_id

),

final as (

    select
        session_totals.session_id,
        first_events.user_id,
        session_totals.session_start,
        session_totals.session_end,
        cast(session_totals.session_start as date) as session_date,
        {{ seconds_between('session_totals.session_start', 'session_totals.session_end') }}
            as session_duration_s,
        session_totals.events,
        session_totals.impressions,
        session_totals.clicks,
        session_totals.conversions,
        session_totals.videos,
        first_events.first_video_id,
        first_events.entry_surface,
        first_events.device

    from session_totals
    inner join first_events
        on session_totals.session_id = first_events.session_id

)

select * from final
