{#- The 8-byte floating point type (contracts spell it with var('contract_float_type')). -#}
{% macro float_type() -%}
    {{ return(adapter.dispatch('float_type', 'clickpulse')()) }}
{%- endmacro %}

{% macro default__float_type() -%}
    double
{%- endmacro %}

{% macro bigquery__float_type() -%}
    float64
{%- endmacro %}
