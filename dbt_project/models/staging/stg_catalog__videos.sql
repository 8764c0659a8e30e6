with

source as (

    select * from {{ source('catalog', 'video_catalog') }}

),

renamed as (

    select
        cast(video_id as string) as video_id,
        cast(title as string) as title,
        cast(series as string) as series,
        cast(genre as string) as genre,
        cast(duration_s as int64) as duration_s,
        cast(release_date as date) as release_date

    from source

)

select * from renamed
