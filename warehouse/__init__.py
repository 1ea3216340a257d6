"""The warehouse, a DuckLake: one door (:class:`~newsflow.warehouse.lakehouse.Warehouse`, with read and
write sessions), numbered migrations, and every SQL statement newsflow runs."""
