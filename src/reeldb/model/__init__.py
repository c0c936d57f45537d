"""The media data model: tenancy, DataStores, MIDs, documents and exact time."""
