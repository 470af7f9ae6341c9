"""Only the C extension lives here; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # The domain-set hash table of the filtering index (see esafety/filtering/domainset.py).
        Extension(
            "esafety.filtering._domainset",
            ["esafety/filtering/_domainset.c"],
            extra_compile_args=["-O2"],
        ),
        # The DNS filter's UDP fast path for ready answers (see esafety/filtering/dns/server.py).
        Extension(
            "esafety.filtering.dns._ready",
            ["esafety/filtering/dns/_ready.c"],
            extra_compile_args=["-O2"],
        ),
    ]
)
