{#- Fractional seconds from start_expr to end_expr (microsecond precision, negative if end is earlier). -#}
{% macro seconds_between(start_expr, end_expr) -%}
    {{ return(adapter.dispatch('seconds_between', 'clickpulse')(start_expr, end_expr)) }}
{%- endmacro %}

{% macro default__seconds_between(start_expr, end_expr) -%}
    (date_diff('microsecond', {{ start_expr }}, {{ end_expr }}) / 1000000.0)
{%- endmacro %}

{% macro bigquery__seconds_between(start_expr, end_expr) -%}
    (timestamp_diff({{ end_expr }}, {{ start_expr }}, microsecond) / 1000000.0)
{%- endmacro %}
