{#- Shift a timestamp by a whole number of minutes (negative moves it back). -#}
{% macro timestamp_add_minutes(timestamp_expr, minutes) -%}
    {{ return(adapter.dispatch('timestamp_add_minutes', 'clickpulse')(timestamp_expr, minutes | int)) }}
{%- endmacro %}

{% macro default__timestamp_add_minutes(timestamp_expr, minutes) -%}
    ({{ timestamp_expr }} + interval '{{ minutes }} minutes')
{%- endmacro %}

{% macro bigquery__timestamp_add_minutes(timestamp_expr, minutes) -%}
    timestamp_add({{ timestamp_expr }}, interval {{ minutes }} minute)
{%- endmacro %}
