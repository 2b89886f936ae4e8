"""modelops.controllers"""
