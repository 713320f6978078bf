"""Opportunity scoring: NicheResearched in, OpportunityScored out."""
