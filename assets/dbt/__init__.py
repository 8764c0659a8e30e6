"""dbt models as Dagster assets (dagster-dbt), and the reconciliation of marts with Redis."""
