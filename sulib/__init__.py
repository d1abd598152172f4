"""sulib: the helper package of the machine-checked companion to kexue.fm.

Modules:
    derive     -- chains of equalities verified by SymPy as they are displayed
    fit        -- power-law (log-log) fits with the standard error of the exponent
    attention  -- softmax attention entropy and statistics (one fused kernel); causal attention as a recurrence, online, blocked
                  and masked; linear attention as an RNN (JAX)
    sparsity   -- measures of sparsity (mean/max, l_q/l_p, Hoyer, Gini) and Hurley & Rickard's six criteria
                  as randomized testers (JAX)
    concentration -- sparsity index of attention weights: closed forms, quadrature, Monte Carlo, finite n,
                  linear attention, decay (JAX)
    relu_attention -- relu² attention with the length / fixed / row-sum divisors, structured score
                  patterns and their softmax normalisers Z(n), attention read at several prefix lengths (JAX)
    gradient_scale -- exact E Σp² of softmax(αs) for i.i.d. Gaussian or cosine scores by quadrature, the
                  annealed approximation e^{α²}/n, a cancellation-free log α(1 − Σp²), cosine scores (JAX)
    gau        -- the gated attention unit (GAU-α) and BERT / RoFormerV2-style attention + FFN blocks,
                  parameter counts, XLA FLOP and memory statistics of compiled blocks (JAX)
    attention_rank -- causal / bidirectional, softmax / linear attention matrices: log-space triangular
                  determinants, numerical, entropy and stable rank, rank collapse with depth (JAX)
    sparsemax  -- sparsemax and entmax-1.5 (sort-free support iteration with the sorted form as fallback,
                  custom_jvp), their losses, α-entmax by bisection, Perturb Max by quadrature (JAX)
    rope       -- rotary position embedding: frequencies, rotations, scores from a matrix of relative
                  positions; scaled variants for k× context (PI, NTK-aware, NTK-fixed, mixed base, log-n
                  scale) and the distance to the nearest trained rotation code (JAX)
    rerope     -- ReRoPE / Leaky ReRoPE position maps, the forward rule and inverse-use settings, two-pass
                  scores and causal attention (JAX)
    argmaxable -- which tokens a softmax layer can ever predict: an exact per-token LP (SciPy HiGHS, with
                  or without a bias) and the post's Frank–Wolfe minimum-norm test with a certificate (JAX)
    position_probe -- the position probe of post 9105: one attention layer with a clipped relative bias and
                  the fixes that break Σ_j a_ij = 1, trained with optax (JAX)
    vq_attention -- Transformer-VQ attention with quantized keys: quadratic, pick-out, causal recurrence,
                  block form with window bias, straight-through with history stop-gradient, k-means (JAX)
    fsq        -- VQ-VAE's nearest-code quantizer with straight-through gradient, codebook/commitment losses,
                  the EMA codebook step (Laplace-smoothed) and dead-code restart; FSQ with sigmoid or tanh
                  bounds; codebook utilization; small VQ/FSQ MLP autoencoders and their stored runs (JAX, optax)
    cosine     -- per-block vs global cosine: decomposition and bounds, the two-block counterexample, Pearson r
                  split into within/between-group blocks, update/gradient cosines along an optax run (JAX)
    hubness    -- exact blocked kNN, k-occurrence counts and their skewness, log(V_n/2^n) (JAX)
    hippo_symbolic -- exact SymPy derivations of the HiPPO matrices from their projection integrals
    tied_embeddings -- tied vs untied / orthogonal-projection / half-swap output heads: the initial
                  bigram loss by chunked and conditional Monte Carlo, a toy bigram LM trained with optax (JAX)
    lion_embeddings -- sign-optimizer drift (Lion/Tiger): closed form of the sign-plus-decay recursion,
                  momentum underflow steps per dtype, a lazy-rows optax wrapper, a Zipfian toy bigram LM (optional
                  RMS norm) over five optimizer arms with gradient-sign agreement counts (JAX, optax)
    lora       -- LoRA, LoRA-GA and PiSSA initializations, the one-step SGD and sign (Adam) objectives with their
                  Eckart–Young floor, the exact first SGD/Adam step, a linear fine-tuning toy with cosines to
                  the full step (JAX, optax)
    optim      -- projected SGD on a ball, regret and its bound (JAX)
    diffusion  -- Gaussian-mixture diffusion ODEs with exact flows, few-step solvers, AMED (JAX, diffrax, optax)
    ddpm       -- discrete VP schedules, the mixture's exact ε and score in VP coordinates, ancestral
                  sampling, exact Gaussian ELBOs (JAX)
    sde        -- the SDE view of diffusion: VE/VP/sub-VP drift and diffusion coefficients, reverse-time
                  Euler-Maruyama with the mixture's exact score (JAX)
    reflow     -- rectified flow on the mixture: exact marginal velocity, ReFlow and WGAN-GP critics (JAX, optax)
    sid        -- score identity distillation of a one-step generator from the exact mixture teacher (JAX, optax)
    nets       -- small MLPs (a list of (W, b) pairs) for the toy training runs
    scaling    -- the quantization model of neural scaling: exact Zipf tails, simulations, sparse parity (JAX)
    ssm        -- linear state-space models: HiPPO matrices, discretizations, scans, projections,
                  convolution kernels (S4's DPLR route, rational transfer functions), DEER (JAX)
    report     -- deterministic tables for notebook output, and the verdict that ends a chapter
    plotting   -- the book's figure style and a check that every axis is labelled
"""

__version__ = "0.1.0"
