"""postbox"""
