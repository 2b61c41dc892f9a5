"""The TRTModel API (trtserve.io/v1alpha1): typed models and the CRD built from them."""
