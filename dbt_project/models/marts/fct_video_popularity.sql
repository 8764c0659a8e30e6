with

events as (

    select * from {{ ref('stg_kafka__click_events') }}

),

videos as (

    select * from {{ ref('dim_videos') }}

),

reference_time as (

    select {{ trending_as_of('events') }} as as_of

),

video_events as (

    select
        events.video_id,
        count(case when events.event_type = 'impression' then 1 end) as impressions,
        count(case when events.event_type = 'click' then 1 end) as clicks,
        count(case when events.event_type = 'conversion' then 1 end) as conversions,
        count(distinct events.user_id) as unique_users,
        sum({{ trending_contribution('events.event_type', 'events.event_time', 'reference_time.as_of') }})
            as trending_score

    from events
    cross join reference_time
    group by events.video_id

),

-- Every catalog video gets a row (zeros when it has no events), and so does a video seen in
-- events that the catalog does not know yet (title and genre null).
all_videos as (

    select
        coalesce(video_events.video_id, videos.video_id) as video_id,
        videos.title,
        videos.genre,
        coalesce(video_events.impressions, 0) as impressions,
        coalesce(video_events.clicks, 0) as clicks,
        coalesce(video_events.conversions, 0) as conversions,
        coalesce(video_events.unique_users, 0) as unique_users,
        coalesce(video_events.trending_score, 0) as trending_score

    from video_events
    full outer join videos
        on video_events.video_id = videos.video_id

),

final as (

    select
        video_id,
        title,
        genre,
        impressions,
        clicks,
        conversions,
        unique_users,
        {{ safe_divide('clicks', 'impressions') }} as ctr,
        cast(trending_score as {{ float_type() }}) as trending_score,
        row_number() over (order by trending_score desc, video_id asc) as popularity_rank

    from all_videos

)

select * from final
