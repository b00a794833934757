"""Graded assignments: an instructor's private project with hidden tests, students' private
copies, every commit of a copy graded by the assignment's pipeline with the hidden files laid
over the student's tree.

hidden.py says which paths are hidden, lays them over a tree and scrubs messages; manage.py
creates assignments and acceptances; grading.py starts a graded pipeline when a copy's main
moves; results.py answers the grades and results views.
"""
