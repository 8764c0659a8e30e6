{#- Truncate a UTC timestamp to the start of its hour: the `event_hour` every hourly mart groups by. -#}
{% macro hour_floor(timestamp_expr) -%}
    {{ return(adapter.dispatch('hour_floor', 'clickpulse')(timestamp_expr)) }}
{%- endmacro %}

{% macro default__hour_floor(timestamp_expr) -%}
    date_trunc('hour', {{ timestamp_expr }})
{%- endmacro %}

{% macro bigquery__hour_floor(timestamp_expr) -%}
    timestamp_trunc({{ timestamp_expr }}, hour)
{%- endmacro %}
