"""The merge pages' addresses and the permissions of a user who merges, as the HTTP tests use them."""

KEY = "default:merging.Person:configured:email"
MERGE = "/admin/integrity/duplicaterule/merge/"
MERGE_ALL = "/admin/integrity/duplicaterule/merge-all/"
GROUP = "/admin/integrity/duplicaterule/group/"
PAGER = "/admin/integrity/duplicaterule/group/pager/"
RULE = "/admin/integrity/duplicaterule/rule/"
RECORDS = "/admin/integrity/mergerecord/"
MERGER = ["view_duplicaterule", "merge_duplicates", "view_mergerecord"]
