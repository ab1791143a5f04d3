# dfcrm 0.2-2.1 crmsim() runs quoted in tests/test_crm.py (nsim = 20000, n = 24, restrict = TRUE, seed 1009).
#   Rscript tools/reference/dfcrm_crmsim.R one1|one3|two
suppressMessages(library(dfcrm, lib.loc = "/tmp/rlib"))
cfg <- commandArgs(trailingOnly = TRUE)[1]
PI <- c(0.05, 0.12, 0.25, 0.40, 0.55)
sk <- getprior(0.05, 0.25, 3, 5)
x0 <- switch(cfg, one1 = 1, one3 = 3, two = c(rep(1, 3), rep(2, 3), rep(3, 3), rep(4, 3), rep(5, 12)))
m <- if (cfg == "two") 1 else 3
s <- crmsim(PI, sk, 0.25, 24, x0, nsim = 20000, mcohort = m, restrict = TRUE, count = FALSE)
print(s$MTD); print(s$level); print(s$tox)
