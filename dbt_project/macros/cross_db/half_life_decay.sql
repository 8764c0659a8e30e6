{#- 0.5 ^ (age / half_life): the exponential decay of the trending score, in one place. -#}
{% macro half_life_decay(age_expr, half_life_expr) -%}
    {{ return(adapter.dispatch('half_life_decay', 'clickpulse')(age_expr, half_life_expr)) }}
{%- endmacro %}

{% macro default__half_life_decay(age_expr, half_life_expr) -%}
    power(0.5, ({{ age_expr }}) / ({{ half_life_expr }}))
{%- endmacro %}

{% macro bigquery__half_life_decay(age_expr, half_life_expr) -%}
    pow(0.5, ({{ age_expr }}) / ({{ half_life_expr }}))
{%- endmacro %}
