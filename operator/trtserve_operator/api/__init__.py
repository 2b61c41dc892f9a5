"""The TRTModel API (group trtserve.io, version v1alpha1): typed models and the CRD built from them."""
