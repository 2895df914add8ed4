"""How a Dask client is obtained: embedded LocalCluster or an existing scheduler."""
