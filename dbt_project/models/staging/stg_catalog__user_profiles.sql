with

source as (

    select * from {{ source('catalog', 'user_profiles') }}

),

renamed as (

    select
        cast(user_id as string) as user_id,
        cast(country as string) as country,
        cast(subscription_tier as string) as subscription_tier,
        cast(signup_date as date) as signup_date,
        cast(language as string) as language

    from source

)

select * from renamed
