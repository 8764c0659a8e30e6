{#-
    dbt's built-in is_incremental(), plus one case: `dbt compile --no-introspect` promises not to query
    the warehouse, yet the built-in still asks it whether {{ this }} exists (for BigQuery that is an API
    call, so compiling needs credentials and network). Without introspection the answer comes from
    var('compile_incremental_branch') instead, so CI can compile both branches of every incremental
    model for BigQuery offline. `dbt run` and `dbt build` always introspect: unchanged behaviour there.
-#}
{% macro is_incremental() %}
    {%- if not execute -%}
        {{ return(false) }}
    {%- elif not flags.INTROSPECT -%}
        {{ return(model.config.materialized == 'incremental'
                  and var('compile_incremental_branch', false)
                  and not should_full_refresh()) }}
    {%- else -%}
        {%- set relation = adapter.get_relation(this.database, this.schema, this.table) -%}
        {{ return(relation is not none
                  and relation.type == 'table'
                  and model.config.materialized == 'incremental'
                  and not should_full_refresh()) }}
    {%- endif -%}
{% endmacro %}
