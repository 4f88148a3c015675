"""The reference HQ control plane: licence authority, catalog, risk, fulfilment, fleet."""
