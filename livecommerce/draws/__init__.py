"""Prize draws: the verifiable algorithm (`verification`), the service that runs draws
(`service`) and its HTTP routes and room commands (`api`)."""
