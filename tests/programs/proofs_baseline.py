"""Baseline for benchmarks/scale.py: `proofs:count` bare DnsRecords and nothing else.

Shows what the mock runtime itself costs per resource, apart from anything mailstack computes.
"""

import pulumi
import pulumi_cloudflare as cloudflare

from components.gc_tuning import tune_gc

tune_gc()  # as __main__.py does, so the two are timed alike

for index in range(pulumi.Config("proofs").get_int("count") or 1):
    cloudflare.DnsRecord(
        f"record-{index}",
        zone_id="zone-1",
        name=f"host{index}.example.org",
        type="TXT",
        content=f'"v=spf1 mx -all {index}"',
        ttl=3600,
    )
