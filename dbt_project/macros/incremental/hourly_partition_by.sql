{#-
    `partition_by` config for tables keyed by an hour column. BigQuery partitions them by day, so a
    merge or a query on recent hours reads only recent partitions; DuckDB tables are not partitioned
    (dbt-duckdb reads partition_by as a DuckLake column list).
-#}
{% macro hourly_partition_by(hour_column) -%}
    {{ return(adapter.dispatch('hourly_partition_by', 'clickpulse')(hour_column)) }}
{%- endmacro %}

{% macro default__hourly_partition_by(hour_column) -%}
    {{ return(none) }}
{%- endmacro %}

{% macro bigquery__hourly_partition_by(hour_column) -%}
    {{ return({'field': hour_column, 'data_type': 'timestamp', 'granularity': 'day'}) }}
{%- endmacro %}
