"""What tests, benchmarks and scripts share to run sfvault against real services.

The emulator launcher is :mod:`emulator.launcher`; here: a backup environment on a Dask cluster
(:mod:`devkit.backup_env`), the ground-truth comparison of a snapshot with the org
(:mod:`devkit.groundtruth`), and throwaway Azurite, PostgreSQL and API-server processes. Nothing
here imports ``tests`` (an import-linter contract holds it), so benchmarks and scripts never
depend on the test suite.
"""
