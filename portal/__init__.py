"""The upload page: each unit opens its personal signed link, uploads its workbook and sees the verdict at once.

Sits at the flows level (imports tasks and schemas; nothing imports it). Started by `nianbao portal`.
"""
