# Regenerate tests/data/boin12_authors_oc.csv (run by hand; tests never need R).
#
# Reference operating characteristics of BOIN12 from the authors' own simulation code: get.oc.obd() in boin12.R of
# github:zichen-liu/ModelAssistedPhase12 (H. Shi, R. Lin, X. Lin). Their file is NOT part of doseesc: give its path.
#
#   apt-get install r-base-core r-cran-iso
#   git -C <mirror> show <commit>:boin12.R > /tmp/boin12.R
#   Rscript tools/reference/boin12_authors.R --src=/tmp/boin12.R --commit=<commit> --ntrial=20000 \
#       --out=tests/data/boin12_authors_oc.csv [--scenarios=A,B,...]     # default: all scenarios, in order
#
# How their function is called, unchanged:
# * boin12.R is a driver script (it needs globals NDOSE, TARGET.T, ... and writes files), so it is not sourced. It is
#   parsed, and only the expression that defines get.oc.obd is evaluated, verbatim, in the global environment.
# * get.oc.obd takes no truth argument: each trial asks the global function simprob() for (pE, pT, obd, mtd); the
#   repository's simprob draws random scenarios. We define simprob() returning the fixed truth of a scenario (no random
#   numbers used), with obd = the tier k being asked about and mtd = number of tiers (mtd only feeds od.sel/od.pts).
# * get.oc.obd returns no per-tier vectors, only bd.sel (% of trials selecting tier obd), bd.pts (mean % of the N planned
#   patients treated at tier obd) and earlystop (% of trials with no dose). It calls set.seed(30) itself, so every call
#   on a scenario replays the same trials whatever obd is: calling it once per tier k = 1..J gives selection % and
#   patients per tier of one and the same set of trials. The script checks this: earlystop, ntox, neff identical across
#   the J calls, and selection over tiers + no-dose = 100%.
# * Global ndose (read inside get.oc.obd) is set to the scenario's number of tiers; ncohort = N / 3, cohortsize = 3.
#   n.earlystop is not an argument: get.oc.obd sets it to N itself (no per-dose cap).
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default = NULL) {
  hit <- grep(paste0("^--", name, "="), args, value = TRUE)
  if (length(hit) == 0) {
    if (is.null(default)) stop("missing --", name, "=")
    return(default)
  }
  sub(paste0("^--", name, "="), "", hit[1])
}
src <- opt("src")
commit <- opt("commit")
ntrial <- as.integer(opt("ntrial", "20000"))
out <- opt("out")
suppressMessages(library(Iso))

# ---- extract the get.oc.obd definition from their file, without running the rest of it ----
find_def <- function(e) {
  if (is.call(e)) {
    if ((identical(e[[1]], as.name("<-")) || identical(e[[1]], as.name("="))) &&
        identical(e[[2]], as.name("get.oc.obd"))) return(e)
    for (k in seq_along(e)[-1]) {
      if (is.call(e[[k]])) {  # (an empty argument, as in x[, 1], cannot be passed on)
        r <- find_def(e[[k]])
        if (!is.null(r)) return(r)
      }
    }
  }
  NULL
}
def <- NULL
for (e in parse(src, keep.source = FALSE)) {
  def <- find_def(e)
  if (!is.null(def)) break
}
if (is.null(def)) stop("get.oc.obd not found in ", src)
eval(def, envir = globalenv())

# ---- scenarios ----
U11 <- 60; U00 <- 40; C_T <- 0.95; C_E <- 0.90; COHORT <- 3; SEED <- 30  # SEED: set.seed(30) inside get.oc.obd
sc <- function(id, pT, pE, N, phiT = 0.35, phiE = 0.25) list(id = id, pT = pT, pE = pE, N = N, phiT = phiT, phiE = phiE)
scenarios <- list(
  sc("A", c(.05, .10, .15, .18, .45), c(.40, .50, .52, .53, .53), 30),
  sc("B", c(.05, .10, .20, .30, .40), c(.10, .20, .50, .50, .50), 30),
  sc("C", c(.55, .65, .75, .80, .85), c(.30, .40, .50, .55, .60), 30),
  sc("D", c(.40, .50, .60, .70, .80), c(.30, .40, .50, .55, .60), 30),
  sc("E", c(.05, .10, .15, .20, .25), c(.40, .05, .45, .50, .50), 30),
  sc("F", c(.50, .60, .70), c(.30, .40, .50), 24),
  sc("G", c(.05, .15, .40), c(.40, .65, .75), 24),
  # the function's own defaults for the targets (targetT = 0.3, targetE = 0.2), on the truths of A and B
  sc("A_def", c(.05, .10, .15, .18, .45), c(.40, .50, .52, .53, .53), 30, 0.30, 0.20),
  sc("B_def", c(.05, .10, .20, .30, .40), c(.10, .20, .50, .50, .50), 30, 0.30, 0.20)
)
want <- strsplit(opt("scenarios", paste(sapply(scenarios, `[[`, "id"), collapse = ",")), ",")[[1]]
scenarios <- Filter(function(s) s$id %in% want, scenarios)

TRUTH <- NULL; OBD_K <- NA
simprob <- function(...) list(pE = TRUTH$pE, pT = TRUTH$pT, obd = OBD_K, mtd = length(TRUTH$pT))

as_count <- function(x, what) {  # their percentages are sums of 100/ntrial; recover the exact integer count
  k <- round(x)
  if (abs(x - k) > 1e-6) stop("non-integer count for ", what, ": ", x)
  k
}

fmt <- function(v) sprintf("%.10g", v)
rows <- character(0)
for (s in scenarios) {
  J <- length(s$pT)
  ndose <<- J
  TRUTH <<- s
  sel <- npat <- numeric(J); stop_pct <- ntox <- neff <- NULL
  t0 <- proc.time()[["elapsed"]]
  for (k in 1:J) {
    OBD_K <<- k
    oc <- get.oc.obd(targetT = s$phiT, targetE = s$phiE, ncohort = s$N / COHORT, cohortsize = COHORT,
                     startdose = 1, cutoff.eli.T = C_T, cutoff.eli.E = C_E, u1 = U11, u2 = U00,
                     ntrial = ntrial, utilitytype = 0, randomtype = 1)
    sel[k] <- as_count(oc$bd.sel * ntrial / 100, "bd.sel")
    npat[k] <- as_count(oc$bd.pts * ntrial * s$N / 100, "bd.pts")
    stop_pct <- c(stop_pct, oc$earlystop); ntox <- c(ntox, oc$ntox); neff <- c(neff, oc$neff)
  }
  # same trials in every call?
  if (length(unique(stop_pct)) != 1 || length(unique(ntox)) != 1 || length(unique(neff)) != 1)
    stop("calls for scenario ", s$id, " did not replay the same trials")
  nstop <- as_count(stop_pct[1] * ntrial / 100, "earlystop")
  if (sum(sel) + nstop != ntrial) stop("selection + no-dose != ntrial in scenario ", s$id)
  cat(sprintf("%-6s sel%% %s | no dose %.2f%% | n/tier %s | mean N %.3f | %.0fs\n", s$id,
              paste(sprintf("%5.2f", 100 * sel / ntrial), collapse = " "), 100 * nstop / ntrial,
              paste(sprintf("%.3f", npat / ntrial), collapse = " "), sum(npat) / ntrial,
              proc.time()[["elapsed"]] - t0))
  key <- paste(s$id, J, s$N, fmt(s$phiT), fmt(s$phiE), paste(fmt(s$pT), collapse = " "),
               paste(fmt(s$pE), collapse = " "), ntrial, SEED, sep = ",")
  for (k in 1:J) rows <- c(rows, paste(key, "select", k, fmt(sel[k] / ntrial), sep = ","))
  for (k in 1:J) rows <- c(rows, paste(key, "n_patients", k, fmt(npat[k] / ntrial), sep = ","))
  rows <- c(rows, paste(key, "no_dose", "", fmt(nstop / ntrial), sep = ","))
  rows <- c(rows, paste(key, "mean_n", "", fmt(sum(npat) / ntrial), sep = ","))
}

md5 <- unname(tools::md5sum(src))
header <- c(
  sprintf(paste0("# BOIN12 operating characteristics from the authors' get.oc.obd(), github:zichen-liu/ModelAssistedPhase12 ",
                 "boin12.R @ commit %s (md5 %s), called unchanged by tools/reference/boin12_authors.R; %s, Iso %s."),
          commit, md5, R.version.string, as.character(packageVersion("Iso"))),
  sprintf(paste0("# Fixed settings: cohort size 3, start tier 1, u11=%g u00=%g (utility 100/%g/%g/0), cutoff.eli.T=%g, ",
                 "cutoff.eli.E=%g, n.earlystop=N (set by get.oc.obd), independent toxicity/efficacy, set.seed(%d) ",
                 "inside get.oc.obd (same seed for every scenario)."), U11, U00, U00, U11, C_T, C_E, SEED),
  paste0("# quantity: select = P(tier selected); n_patients = mean patients at tier; no_dose = P(trial stopped, ",
         "no dose selected); mean_n = mean total patients. tier 1-based, empty for trial-level rows."),
  "scenario,n_tiers,N,phi_t,phi_e,p_tox,p_eff,n_trials,seed,quantity,tier,value")
writeLines(c(header, rows), out)
