# SPDX-License-Identifier: MIT
# Multi-rank tests under mpiexec. The default tier runs each with 2 ranks over
# shm and 4 KiB lines (carried inline in the grants, DSM_DATA=auto's choice),
# plus a smoke run with 4 ranks over tcp and 64 KiB lines read by RDMA; the long
# tier runs the whole matrix, both data paths, with ten times the rounds.
# ThreadSanitizer's layout has no room for TiB mappings (TRAPS.md).
set(DSM_MR_HEAP 64G)
if(DSM_SANITIZE STREQUAL "thread")
  set(DSM_MR_HEAP 1G)
endif()

function(dsm_mr_program name)
  add_executable(${name} ${name}.c)
  target_link_libraries(${name} PRIVATE dsm MPI::MPI_C Threads::Threads)
endfunction()

# dsm_mr_test(<prog> [ENV ...] [SMOKE_ENV ...] [TIMEOUT s])
function(dsm_mr_test prog)
  cmake_parse_arguments(T "" "TIMEOUT" "ENV;SMOKE_ENV" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set(run ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
  dsm_add_test(NAME ${prog}_2r_shm_4k LABEL runtime TIMEOUT ${T_TIMEOUT}
    COMMAND ${run} 2 $<TARGET_FILE:${prog}>
    ENVIRONMENT DSM_PROVIDER=shm DSM_LINE_SIZE=4096 DSM_HEAP_SIZE=${DSM_MR_HEAP} ${T_ENV})
  dsm_add_test(NAME ${prog}_4r_tcp_64k LABEL runtime TIMEOUT ${T_TIMEOUT}
    COMMAND ${run} 4 $<TARGET_FILE:${prog}>
    ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_LINE_SIZE=65536 DSM_HEAP_SIZE=${DSM_MR_HEAP}
      DSM_DATA=rdma ${T_SMOKE_ENV})
  foreach(np 2 3 4)
    foreach(prov shm tcp)
      foreach(line 4096 65536)
        foreach(data rdma inline)
          set(p ${prov})
          if(prov STREQUAL "tcp")
            set(p "tcp\\;ofi_rxm")
          endif()
          dsm_add_test(NAME ${prog}_long_${np}r_${prov}_${line}_${data} LABEL runtime LONG
            TIMEOUT 20000
            COMMAND ${run} ${np} $<TARGET_FILE:${prog}>
            ENVIRONMENT DSM_PROVIDER=${p} DSM_LINE_SIZE=${line} DSM_HEAP_SIZE=${DSM_MR_HEAP}
              DSM_DATA=${data})
        endforeach()
      endforeach()
    endforeach()
  endforeach()
endfunction()

foreach(p mr_api mr_shared mr_litmus mr_stress mr_kill mr_stall mr_sync mr_prefetch mr_mw mr_profile mr_cache)
  dsm_mr_program(${p})
endforeach()
dsm_mr_test(mr_api)
# Read-ahead on (the default) in the matrix; off once, where nothing may be read ahead.
dsm_mr_test(mr_prefetch)
dsm_add_test(NAME mr_prefetch_off_2r_shm LABEL runtime TIMEOUT 120
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_prefetch>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} DSM_PREFETCH=off)
dsm_mr_test(mr_shared SMOKE_ENV MR_ROUNDS=2000)
# 5,000 rounds per shape in the default tier (the program's 10,000 took 85 s here; every
# shape still races hundreds of times), 1,000 in the 4-rank tcp smoke run; the long tier's
# matrix runs 100,000 (ten times the program's default).
dsm_mr_test(mr_litmus ENV MR_ROUNDS=5000 SMOKE_ENV MR_ROUNDS=1000)
dsm_mr_test(mr_stress SMOKE_ENV MR_SECONDS=5)
# 100,000 barriers with 2 ranks (the program's default), 4,000 in the 4-rank tcp run (10,000
# took 42 s here; the long tier's matrix runs a million).
dsm_mr_test(mr_sync SMOKE_ENV MR_ROUNDS=4000)
# Migratory lines off: the turns must still pass, and no line may move whole.
dsm_add_test(NAME mr_sync_nomig_2r_shm LABEL runtime TIMEOUT 120
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_sync>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} MR_ROUNDS=10000 DSM_MIGRATORY=0)
# The barrier check catches a rank whose write lands after the barrier (an early pass),
# and that is the one check that fails (stdout and stderr arrive in either order).
dsm_add_test(NAME mr_sync_inject_2r_shm LABEL runtime TIMEOUT 120
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_sync>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} MR_ROUNDS=1000 MR_SYNC_INJECT=late)
set_tests_properties(mr_sync_inject_2r_shm PROPERTIES
  PASS_REGULAR_EXPRESSION
  "passed before it arrived.*[0-9]+ passed, 1 failed|[0-9]+ passed, 1 failed.*passed before it arrived")
# Multiple-writer memory: 1,000 rounds per phase with 2 ranks, 100 in the 4-rank tcp run.
dsm_mr_test(mr_mw SMOKE_ENV MR_ROUNDS=1000)
# The other way of finding writes: twins taken at write faults (auto takes the asynchronous
# one on this kernel).
dsm_add_test(NAME mr_mw_twin_2r_shm LABEL runtime TIMEOUT 120
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_mw>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} DSM_MW_TRACK=twin)
dsm_add_test(NAME mr_mw_twin_4r_tcp_64k LABEL runtime TIMEOUT 300
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 $<TARGET_FILE:mr_mw>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_LINE_SIZE=65536 DSM_HEAP_SIZE=${DSM_MR_HEAP}
    DSM_MW_TRACK=twin MR_ROUNDS=1000)
# Without the acquire a reader keeps its old copy: the message check must fail, on both
# ranks (each reads in every other round).
dsm_add_test(NAME mr_mw_inject_2r_shm LABEL runtime TIMEOUT 120
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_mw>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} MR_ROUNDS=100 MR_MW_INJECT=noacquire)
set_tests_properties(mr_mw_inject_2r_shm PROPERTIES
  PASS_REGULAR_EXPRESSION "[0-9]+ passed, 2 failed")
# A broken peer inside the job: messages only a home takes, for lines homed elsewhere
# (the runtime's static library: the forgeries go through its own send).
add_executable(mr_wire mr_wire.c)
target_link_libraries(mr_wire PRIVATE dsm_runtime MPI::MPI_C Threads::Threads)
dsm_add_test(NAME mr_wire_2r_shm LABEL runtime TIMEOUT 90
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_wire>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
set_tests_properties(mr_wire_2r_shm PROPERTIES PASS_REGULAR_EXPRESSION "[1-9][0-9]* passed, 0 failed")
dsm_add_test(NAME mr_kill_2r_shm LABEL runtime TIMEOUT 90
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kill_rank.sh ${MPIEXEC_EXECUTABLE} 2 $<TARGET_FILE:mr_kill>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
dsm_add_test(NAME mr_kill_3r_tcp LABEL runtime TIMEOUT 90
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kill_rank.sh ${MPIEXEC_EXECUTABLE} 3 $<TARGET_FILE:mr_kill>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_HEAP_SIZE=${DSM_MR_HEAP})
# The last rank returns 0 from main without dsm_finalize: status 4, the others fail.
dsm_add_test(NAME mr_kill_exit_2r_shm LABEL runtime TIMEOUT 90
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kill_rank.sh ${MPIEXEC_EXECUTABLE} 2 $<TARGET_FILE:mr_kill> exit
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
# A reply that cannot be sent ends its sender, and the requester with it, instead of a hang.
add_executable(mr_reply_fail mr_reply_fail.c)
target_link_libraries(mr_reply_fail PRIVATE dsm_runtime MPI::MPI_C Threads::Threads)
dsm_add_test(NAME mr_reply_fail_2r_shm LABEL runtime TIMEOUT 60
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/reply_fail.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_reply_fail>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
# Use after free: freed and never-allocated memory ends the rank that touches it, on every rank.
add_executable(mr_free mr_free.c)
target_link_libraries(mr_free PRIVATE dsm MPI::MPI_C)
dsm_add_test(NAME mr_free_2r_shm LABEL runtime TIMEOUT 240
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/free.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_free>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
dsm_add_test(NAME mr_free_2r_tcp LABEL "runtime;long" TIMEOUT 240
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/free.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_free>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_HEAP_SIZE=${DSM_MR_HEAP})
# DSM_ON_DEATH=continue: the survivors of a kill go on, SIGBUS exactly on the lost lines.
add_executable(mr_death mr_death.c)
target_link_libraries(mr_death PRIVATE dsm_runtime MPI::MPI_C Threads::Threads)
# On shm the victim is quiet as it dies (MR_DEATH_QUIET: TRAPS.md, "A dead rank and shm").
dsm_add_test(NAME mr_death_3r_shm LABEL runtime TIMEOUT 120
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/death.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_death>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} MR_DEATH_QUIET=1)
dsm_add_test(NAME mr_death_3r_shm_rdma LABEL runtime TIMEOUT 120
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/death.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_death>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP} MR_DEATH_QUIET=1 DSM_DATA=rdma)
dsm_add_test(NAME mr_death_3r_tcp LABEL runtime TIMEOUT 120
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/death.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_death>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_HEAP_SIZE=${DSM_MR_HEAP})
# As a user runs it: hydra kills the survivors itself; nothing may stay in /dev/shm.
dsm_add_test(NAME mr_kill_plain_3r_shm LABEL runtime TIMEOUT 90
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/kill_rank.sh ${MPIEXEC_EXECUTABLE} 3 $<TARGET_FILE:mr_kill> plain
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
dsm_add_test(NAME mr_stall_2r_shm LABEL runtime TIMEOUT 90
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stall_rank.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_stall>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
# A debugger's stop of 20 s on the path between hosts (heartbeats, no pidfds): suspected,
# not dead (DSM_TP_DEAD_MS); the job finishes.
dsm_add_test(NAME mr_stall_heartbeat_2r_tcp LABEL runtime TIMEOUT 120
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/stall_rank.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_stall> heartbeat
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_HEAP_SIZE=${DSM_MR_HEAP})
# Sanitizers reserve TiBs of shadow memory, which strict overcommit refuses: the
# script says so and skips.
dsm_add_test(NAME overcommit_strict_2r_shm LABEL runtime TIMEOUT 150
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/overcommit.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:dsm-demo>
  ENVIRONMENT DSM_PROVIDER=shm "DSM_TEST_SANITIZE=${DSM_SANITIZE}")

# The line profile (DSM_PROFILE) read back by dsm-prof: 2 ranks on shm with lines carried
# in the grants, 4 on tcp with 64 KiB lines read by RDMA (the profile sees both paths).
dsm_add_test(NAME profile_2r_shm_4k LABEL runtime TIMEOUT 300
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/profile.sh ${MPIEXEC_EXECUTABLE}
          $<TARGET_FILE:mr_profile> $<TARGET_FILE:dsm-prof> 2
  ENVIRONMENT DSM_PROVIDER=shm DSM_LINE_SIZE=4096 DSM_HEAP_SIZE=${DSM_MR_HEAP})
dsm_add_test(NAME profile_4r_tcp_64k LABEL runtime TIMEOUT 300
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/profile.sh ${MPIEXEC_EXECUTABLE}
          $<TARGET_FILE:mr_profile> $<TARGET_FILE:dsm-prof> 4
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_LINE_SIZE=65536 DSM_HEAP_SIZE=${DSM_MR_HEAP}
    DSM_DATA=rdma MR_ROUNDS=5000)

# The bounded cache: mr_cache with a 16-line cache (2 ranks shm, 4 tcp by RDMA), and once
# unlimited, where its resident-memory check must see the bound broken (the test of the
# test). Then the programs that check memory's behaviour under a 16-line cache, where
# nearly every step evicts: litmus, stress, shared (atomics, spin locks, mutexes, pointers)
# and the API's kernel-access checks.
dsm_add_test(NAME mr_cache_2r_shm_4k LABEL runtime TIMEOUT 300
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_cache>
  ENVIRONMENT DSM_PROVIDER=shm DSM_LINE_SIZE=4096 DSM_HEAP_SIZE=${DSM_MR_HEAP}
    DSM_CACHE_SIZE=64K)
dsm_add_test(NAME mr_cache_4r_tcp_64k LABEL runtime TIMEOUT 300
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 $<TARGET_FILE:mr_cache>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_LINE_SIZE=65536 DSM_HEAP_SIZE=${DSM_MR_HEAP}
    DSM_DATA=rdma DSM_CACHE_SIZE=1M)
dsm_add_test(NAME mr_cache_unbounded_2r_shm LABEL runtime TIMEOUT 300
  COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:mr_cache>
  ENVIRONMENT DSM_PROVIDER=shm DSM_LINE_SIZE=4096 DSM_HEAP_SIZE=${DSM_MR_HEAP}
    DSM_CACHE_SIZE=unlimited MR_CACHE_UNBOUNDED=1)
# (Litmus with a fifth of its rounds: every round's fresh lines are evictions, so at the
# default 10,000 it would take minutes.)
foreach(p mr_litmus mr_stress mr_shared mr_api)
  set(rounds "")
  if(p STREQUAL "mr_litmus")
    set(rounds MR_ROUNDS=2000)
  elseif(p STREQUAL "mr_stress")
    set(rounds MR_SECONDS=10) # half of mr_stress_2r_shm_4k's time, which runs beside it
  endif()
  dsm_add_test(NAME ${p}_cache16_2r_shm_4k LABEL runtime TIMEOUT 300
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2 $<TARGET_FILE:${p}>
    ENVIRONMENT DSM_PROVIDER=shm DSM_LINE_SIZE=4096 DSM_HEAP_SIZE=${DSM_MR_HEAP}
      DSM_CACHE_SIZE=64K ${rounds})
  dsm_add_test(NAME ${p}_cache16_long_4r_tcp_64k LABEL runtime LONG TIMEOUT 20000
    COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 4 $<TARGET_FILE:${p}>
    ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_LINE_SIZE=65536 DSM_HEAP_SIZE=${DSM_MR_HEAP}
      DSM_DATA=rdma DSM_CACHE_SIZE=1M)
endforeach()
# Live checkpoint and restart: a snapshot taken while every thread writes, a kill, a restart
# that sees exactly the snapshot; damaged snapshots refused; 4 ranks -> 2 and 2 -> 4.
dsm_mr_program(mr_ckpt)
dsm_add_test(NAME mr_ckpt_shm LABEL runtime TIMEOUT 400
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ckpt.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_ckpt>
          $<TARGET_FILE:dsm-info>
  ENVIRONMENT DSM_PROVIDER=shm DSM_HEAP_SIZE=${DSM_MR_HEAP})
dsm_add_test(NAME mr_ckpt_long_tcp_64k_rdma LABEL runtime LONG TIMEOUT 900
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/ckpt.sh ${MPIEXEC_EXECUTABLE} $<TARGET_FILE:mr_ckpt>
          $<TARGET_FILE:dsm-info>
  ENVIRONMENT "DSM_PROVIDER=tcp\\;ofi_rxm" DSM_HEAP_SIZE=${DSM_MR_HEAP} DSM_LINE_SIZE=65536
    DSM_DATA=rdma)
