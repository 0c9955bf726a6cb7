"""File operations on recordings and archives: compress, restore, export, verify, read, report."""
