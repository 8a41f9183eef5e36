"""Feature extraction past one machine: ``hubcli extract`` on Apache Beam.

Beam (the ``beam`` extra) is imported only by the modules that build or run a pipeline,
so no other command pays for it.
"""
