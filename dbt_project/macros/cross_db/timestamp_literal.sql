{#-
    A UTC timestamp constant from an ISO 8601 string, e.g. a var set by Dagster. The value is
    validated, parsed and re-printed, so nothing from outside reaches the SQL text verbatim.
    Offsets are converted to UTC; values without one are taken as UTC already.
    `cast('YYYY-MM-DD hh:mm:ss.ffffff' as timestamp)` means the same in DuckDB and BigQuery.
-#}
{% macro timestamp_literal(value) -%}
    {%- set text = value | string | trim -%}
    {%- set iso_date = '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]' -%}
    {%- set iso_time = '([T ][0-9][0-9:.]*(Z|[+-][0-9][0-9]:?[0-9][0-9])?)?' -%}
    {%- if not modules.re.fullmatch(iso_date ~ iso_time, text) -%}
        {{ exceptions.raise_compiler_error("not an ISO 8601 timestamp: '" ~ text ~ "'") }}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text) -%}
    {%- if parsed.tzinfo is not none -%}
        {%- set parsed = parsed.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
    {%- endif -%}
    cast('{{ parsed.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}
