"""Campaign screening: CampaignPlanned -> ContentSubmitted per item -> BiasScored -> verdict."""
