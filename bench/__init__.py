"""Benchmarks: each module's ``run()`` measures ClickPulse and its baseline in the same run."""
