"""flowgate's runtime: workers, the status poller, vendor clients and simulators.

Entry point: `flowgate` (see `workers.cli`). Bootstrap: `workers.app.Flowgate`.
"""
