"""modelops.trainer"""
