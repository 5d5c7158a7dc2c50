"""Stayy service runtime: the cluster-safe job framework, its API and admin."""
