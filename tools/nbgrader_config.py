"""nbgrader's configuration for the course.

``python tools/notebooks.py course DIR`` copies this file into the nbgrader course folder
``DIR``, and ``python tools/notebooks.py build`` releases ``notebooks/student/`` with nbgrader's
own preprocessors under it, so the two are the same notebooks. Edit the copy in your course
folder; see the README's "For instructors".
"""

c = get_config()  # noqa: F821 (nbgrader's loader defines get_config)

# Your course's name on the exchange (`nbgrader release_assignment` / `collect`).
c.CourseDirectory.course_id = "deeplab-course"

# What a solution region becomes in the released notebooks. The raise is what makes a self-check
# print "not implemented yet" and hand on the package's version in a learner's Run-all.
c.ClearSolutions.code_stub = {
    "python": (
        "# YOUR CODE HERE\n"
        'raise NotImplementedError("Exercise: write this part, then run the check below.")'
    )
}
c.ClearSolutions.text_stub = "*Your answer here.*"

# The most seconds one cell may run in `nbgrader autograde` and `validate` (nbgrader's default,
# 30, leaves little room for the slowest cells of 03 and 04, 13-18 s on a 2-core CPU, and stops
# 07's training cell anywhere): 07 trains in one cell for about 5 minutes on a 2-core CPU, and
# 08 trains the same model when it finds no checkpoint.
c.Execute.timeout = 1200
