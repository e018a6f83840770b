"""Canopy's Python client: `CanopyClient(target, index)` searches a Canopy router with numpy arrays."""
from canopy.client import BatchResult, CanopyClient, IndexInfo, SearchResult, SidecarStatus, TlsOptions

__all__ = ["BatchResult", "CanopyClient", "IndexInfo", "SearchResult", "SidecarStatus", "TlsOptions"]
