# Regenerate the BOIN 2.7.2 reference fixtures in tests/data/ (run by hand; tests never need R).
#
#   apt-get install r-base-core r-cran-iso
#   R CMD INSTALL -l /tmp/rlib <BOIN 2.7.2 source from CRAN>
#   python tools/reference/make_states.py > states.csv     # random (n, y) states, seed 42
#   Rscript tools/reference/boin_reference.R                # writes r_select.csv, r_bound_*.csv, prints get.oc
#
# The get.oc() results printed at the end are the reference values in tests/test_boin.py.
suppressMessages(library(BOIN, lib.loc = "/tmp/rlib"))
s <- read.csv("states.csv")
out <- matrix(NA, nrow(s), 4)
for (i in seq_len(nrow(s))) {
  K <- s$K[i]; n <- as.numeric(s[i, 2:(1 + K)]); y <- as.numeric(s[i, 8:(7 + K)])
  out[i, 1] <- select.mtd(0.3, n, y)$MTD
  out[i, 2] <- select.mtd(0.25, n, y, boundMTD = TRUE)$MTD
  out[i, 3] <- select.mtd(0.3, n, y, extrasafe = TRUE)$MTD
  out[i, 4] <- select.mtd(0.2, n, y, cutoff.eli = 0.9)$MTD
}
write.csv(out, "r_select.csv", row.names = FALSE)
for (tg in c(0.25, 0.3, 0.35)) {
  b <- get.boundary(tg, ncohort = 12, cohortsize = 3)$full_boundary_tab
  write.csv(b, sprintf("r_bound_%s.csv", tg))
}
p <- c(0.05, 0.12, 0.25, 0.40, 0.55)
cfgs <- list(list(name = "default", args = list()),
             list(name = "earlystop9", args = list(n.earlystop = 9)),
             list(name = "titration", args = list(titration = TRUE)),
             list(name = "extrasafe", args = list(extrasafe = TRUE)),
             list(name = "toxic", args = list(), p = c(0.35, 0.5, 0.6, 0.7, 0.8)))
for (cf in cfgs) {
  pp <- if (is.null(cf$p)) p else cf$p
  oc <- do.call(get.oc, c(list(target = 0.25, p.true = pp, ncohort = 10, cohortsize = 3,
                               ntrial = 20000, seed = 1), cf$args))
  cat(cf$name, "sel", oc$selpercent, "| npat", oc$npatients, "| totaln", oc$totaln,
      "| stop", oc$percentstop, "\n")
}
