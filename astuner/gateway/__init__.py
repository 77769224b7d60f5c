"""An OpenAI-compatible endpoint per episode, in front of the policy engine (``model_tuner.openai_endpoint()``).

Every request goes through the episode's ``EpisodeLLM``, the same core ModelTuner uses, so an agent
written against the OpenAI API trains token-exactly like an AgentScope one.
"""

from astuner.gateway.openai_api import GatewayError
from astuner.gateway.server import Gateway, shared_gateway

__all__ = ["Gateway", "GatewayError", "shared_gateway"]
