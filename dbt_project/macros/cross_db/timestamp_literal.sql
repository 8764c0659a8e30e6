{#-
    A UTC timestamp constant from an ISO 8601 string or a datetime, e.g. a var set by Dagster.
    The value is parsed and re-printed, so nothing from outside reaches the SQL text verbatim.
    Offsets are converted to UTC; values without one are taken as UTC already.
    `cast('YYYY-MM-DD hh:mm:ss.ffffff' as timestamp)` means the same in DuckDB and BigQuery.
-#}
{% macro timestamp_literal(value) -%}
    cast('{{ parse_utc_timestamp(value).strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- Parse to a naive UTC datetime; none and '' give none. -#}
{% macro parse_utc_timestamp(value) -%}
    {%- if value is none or value == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if value is string -%}
        {%- set text = value.strip() -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+(Z|[+-][0-9]{2}:?[0-9]{2})?)?', text) -%}
            {{ exceptions.raise_compiler_error("not an ISO 8601 timestamp: '" ~ value ~ "'") }}
        {%- endif -%}
        {%- set parsed = modules.datetime.datetime.fromisoformat(text) -%}
    {%- else -%}
        {%- set parsed = value -%}
    {%- endif -%}
    {%- if parsed.tzinfo is not none -%}
        {%- set parsed = parsed.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    {{ return(parsed) }}
{%- endmacro %}
