with

videos as (

    select * from {{ ref('stg_catalog__videos') }}

),

final as (

    select
        video_id,
        title,
        series,
        genre,
        duration_s,
        release_date

    from videos

)

select * from final
