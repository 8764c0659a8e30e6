with

events as (

    select * from {{ ref('stg_kafka__click_events') }}

),

recommendation_events as (

    select
        event_date,
        coalesce(model_version, 'unknown') as model_version,
        rec_slot,
        event_type

    from events
    where rec_slot is not null

),

aggregated as (

    select
        event_date,
        model_version,
        rec_slot,
        count(case when event_type = 'impression' then 1 end) as impressions,
        count(case when event_type = 'click' then 1 end) as clicks,
        count(case when event_type = 'conversion' then 1 end) as conversions

    from recommendation_events
    group by event_date, model_version, rec_slot

),

final as (

    select
        event_date,
        model_version,
        rec_slot,
        impressions,
        clicks,
        conversions,
        {{ safe_divide('clicks', 'impressions') }} as ctr

    from aggregated

)

select * from final
