with

user_profiles as (

    select * from {{ ref('stg_catalog__user_profiles') }}

),

final as (

    select
        user_id,
        country,
        subscription_tier,
        signup_date,
        language

    from user_profiles

)

select * from final
