with

events as (

    select
        *,
        {{ playback_position_bucket('playback_position_s') }} as position_bucket

    from {{ ref('stg_kafka__click_events') }}

),

button_clicks as (

    select
        coalesce(button_id, 'unknown') as button_id,
        position_bucket,
        count(*) as clicks,
        count(distinct user_id) as unique_users

    from events
    where event_type = 'click'
    group by coalesce(button_id, 'unknown'), position_bucket

),

-- Recommendation tiles are the one button that answers impressions: tile impressions
-- (impressions with a rec_slot) are set against its clicks in the same position bucket.
rec_tile_impressions as (

    select
        '{{ var("rec_tile_button_id") }}' as button_id,
        position_bucket,
        count(*) as impressions

    from events
    where event_type = 'impression' and rec_slot is not null
    group by position_bucket

),

joined as (

    select
        coalesce(button_clicks.button_id, rec_tile_impressions.button_id) as button_id,
        coalesce(button_clicks.position_bucket, rec_tile_impressions.position_bucket) as position_bucket,
        coalesce(button_clicks.clicks, 0) as clicks,
        coalesce(button_clicks.unique_users, 0) as unique_users,
        case
            when coalesce(button_clicks.button_id, rec_tile_impressions.button_id)
                = '{{ var("rec_tile_button_id") }}'
                then coalesce(rec_tile_impressions.impressions, 0)
        end as impressions

    from button_clicks
    full outer join rec_tile_impressions
        on
            button_clicks.button_id = rec_tile_impressions.button_id
            and button_clicks.position_bucket = rec_tile_impressions.position_bucket

),

final as (

    select
        button_id,
        position_bucket,
        clicks,
        unique_users,
        {{ safe_divide('clicks', 'sum(clicks) over (partition by button_id)') }} as click_share,
        impressions,
        {{ safe_divide('clicks', 'impressions') }} as ctr

    from joined

)

select * from final
