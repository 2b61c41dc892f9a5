"""Tests of the TRTModel API: models, CRD, CEL rules, examples and invalid manifests."""
