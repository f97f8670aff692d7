using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>
/// The per-step noise of one batch: step i of a sampler draws stream i + 1 of <see cref="SeededNoise"/> (stream 0 is
/// the initial noise) for rows <see cref="First"/> … , so sample j's noise depends only on (seed, j).
/// </summary>
/// <param name="Seed">The sampling seed.</param>
/// <param name="First">The sample index of the batch's first row.</param>
/// <param name="StepOffset">
/// Steps of the full path that this run skips: step i draws the noise of step i + offset, so a run over the last levels
/// of a path (SDEdit, <see cref="Editing.ImageToImage"/>) draws what the full run would at those levels.
/// </param>
public readonly record struct StepNoise(ulong Seed, long First, int StepOffset = 0)
{
    /// <summary>Standard normal noise for step <paramref name="step"/> (0-based) with the shape, dtype and device of <paramref name="like"/>.</summary>
    public Tensor Normal(int step, Tensor like) =>
        SeededNoise.Normal(Seed, StreamDomains.FirstStepNoise + (ulong)(step + StepOffset), First, (int)like.shape[0], like.shape.AsSpan(1), like.device).to_type(like.dtype);
}

/// <summary>
/// Stochastic churn (Karras et al. 2022, Algorithm 2, lines 4–6): before step i, when S_tmin ≤ σ_i ≤ S_tmax, the state
/// is lifted to σ̂ = σ_i·(1 + γ), γ = min(S_churn/N, √2 − 1), by adding fresh noise of variance S_noise²·(σ̂² − σ_i²).
/// </summary>
/// <param name="SChurn">S_churn: the total amount of added noise over N steps (0 turns churn off).</param>
/// <param name="STmin">S_tmin: the lowest noise level that is churned.</param>
/// <param name="STmax">S_tmax: the highest noise level that is churned.</param>
/// <param name="SNoise">S_noise: scale of the added noise (slightly above 1 counters the denoiser's loss of detail).</param>
public sealed record StochasticChurn(double SChurn, double STmin = 0, double STmax = double.PositiveInfinity, double SNoise = 1)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (!(SChurn >= 0) || double.IsInfinity(SChurn)) throw new DiffuseException($"S_churn must be zero or positive (got {SChurn}).");
        if (!(STmin >= 0) || !(STmax >= STmin)) throw new DiffuseException($"the churn range needs 0 ≤ S_tmin ≤ S_tmax (got {STmin} … {STmax}).");
        if (!(SNoise > 0) || double.IsInfinity(SNoise)) throw new DiffuseException($"S_noise must be positive (got {SNoise}).");
    }

    /// <summary>γ_i for a step at noise level <paramref name="sigma"/> of <paramref name="steps"/> steps (0 at σ = ∞: pure noise needs no churn).</summary>
    public double Gamma(double sigma, int steps) =>
        sigma >= STmin && sigma <= STmax && !double.IsPositiveInfinity(sigma) ? Math.Min(SChurn / steps, Math.Sqrt(2) - 1) : 0;
}

/// <summary>
/// Samplers that integrate the probability-flow ODE or the reverse SDE in the variance-exploding variable (Karras et al.
/// 2022, §2–4), driving any <see cref="ISigmaDenoiser"/>. Notation map: σ_0 &gt; … &gt; σ_N = 0 the noise levels;
/// x = z/√ᾱ = x0 + σ·ε the state; D = D(x; σ) the x0 estimate; ε̂ = (x − D)/σ, which is also dx/dσ along the ODE
/// (Karras et al. 2022, eq. 1 with the score of eq. 3 and σ(t) = t); λ = −log σ (half the log-SNR) and h = λ_{i+1} − λ_i, so
/// e^(−h) = σ_{i+1}/σ_i. All samplers share one signature: the denoiser, the initial noise z ~ N(0, I) [B, ...] (the
/// state at σ_0 in the variance-preserving scale, so x_0 = z·√(1 + σ_0²)), the levels, the per-step noise, the options
/// (<see cref="SamplerOptions.ClipX0"/>, <see cref="SamplerOptions.Churn"/>) and a callback. Each is an update rule of
/// <see cref="SamplerTable"/> run by <see cref="SamplerDriver"/>, like <see cref="Ddpm"/> and <see cref="Ddim"/>, which
/// keep their state in z; they keep no state between calls: multistep history belongs to the run. The last step always lands on σ = 0 with x = D (the exact limit of
/// every update as σ_{i+1} → 0), and when σ_0 = +∞ (zero terminal SNR) the first step is the exact first-order step from
/// pure noise, x_1 = D + σ_1·ε̂ (D and ε̂ stay finite there although x does not).
/// <para>
/// The deterministic samplers also run backwards, from low to high noise (an increasing list of positive levels, see
/// <see cref="NoiseLevels.ValidateIncreasing"/>): every update above is a quadrature of the same ODE over [σ_i, σ_{i+1}]
/// and holds for either sign of σ_{i+1} − σ_i (h &lt; 0 in the exponential integrators). Run upwards they are the
/// encoder of DDIM inversion (Song et al. 2021, §4.3; see <see cref="Editing.Inversion"/>), and they return the state x
/// at the last level, in the variance-exploding scale. Likewise a decreasing list that stops above σ = 0 is run as
/// a segment of a longer path and returns x at its last level (RePaint's blocks, <see cref="Editing.Inpainting"/>).
/// </para>
/// </summary>
public static class SigmaSamplers
{
    /// <summary>
    /// Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 without the Heun correction):
    /// x_{i+1} = x̂ + (σ_{i+1} − σ̂)·ε̂ = D + σ_{i+1}·ε̂, with optional churn. Without churn it is DDIM with η = 0 on the same
    /// levels (Song et al. 2021, §4.3: DDIM is Euler's method in σ). One evaluation per step.
    /// </summary>
    public static Tensor Euler(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.Euler, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1; with
    /// <see cref="SamplerOptions.Churn"/>, Algorithm 2): an Euler step to σ_{i+1}, then the trapezoidal correction
    /// x_{i+1} = x̂ + (σ_{i+1} − σ̂)·(ε̂ + ε̂')/2 with ε̂' evaluated at the Euler point. Two evaluations per step, one on the
    /// last step to σ = 0 (and on a step from σ = ∞).
    /// </summary>
    public static Tensor Heun(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.Heun, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// Euler ancestral: the ancestral step of Ho et al. 2020 (Algorithm 2) written in σ-space, as in k-diffusion. The Bayes
    /// posterior of x_{i+1} given x_i and D is N(D + σ_down·ε̂, σ_up²) with σ_down = σ_{i+1}²/σ_i and
    /// σ_up = σ_{i+1}·√(1 − σ_{i+1}²/σ_i²); on the trained timesteps this is DDPM with σ² = β̃. One evaluation per step.
    /// </summary>
    public static Tensor EulerAncestral(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.EulerAncestral, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// DPM-Solver++(2M) (Lu et al. 2022, DPM-Solver++, Algorithm 2): the exponential integrator of the data-prediction ODE,
    /// x_{i+1} = (σ_{i+1}/σ_i)·x_i + (1 − e^(−h))·[(1 + 1/(2r))·D_i − 1/(2r)·D_{i−1}] with r = h_{i−1}/h_i; the first step
    /// (no history) is first order, i.e. DDIM. Second order, one evaluation per step.
    /// </summary>
    public static Tensor DpmSolver2M(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.DpmSolver2M, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// DPM-Solver++(3M) (Lu et al. 2022, DPM-Solver++, Algorithm 2 carried to third order): the exact solution
    /// x_{i+1} = e^(−h)·x_i + σ_{i+1}·∫ e^λ·D dλ with D expanded to second order in λ,
    /// x_{i+1} = e^(−h)·x_i + φ0·D_i + φ1·D'_i + φ2·D''_i with φ0 = 1 − e^(−h), φ1 = h − φ0,
    /// φ2 = h²/2 − φ1 (the integrals of e^(λ − λ_{i+1})·(λ − λ_i)^k/k!), and D', D'' the first and second derivatives in λ
    /// of the quadratic through the last three data predictions (Newton divided differences, D'' = 2·D[λ_i, λ_{i−1},
    /// λ_{i−2}]). Warm-up steps use the 1st and 2nd-order updates, and the step before the last uses at most 2nd order
    /// ("lower-order final steps"). Third order, one evaluation per step. (Some public implementations weight the
    /// second divided difference by φ2 instead of 2·φ2; that halves D'' and measures as second order on the Gaussian test.)
    /// </summary>
    public static Tensor DpmSolver3M(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.DpmSolver3M, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// SDE-DPM-Solver++(2M) (Lu et al. 2022, DPM-Solver++: the counterpart of Algorithm 2 for the reverse SDE in
    /// data-prediction form, midpoint variant): x_{i+1} = e^(−2h)·x_i + (1 − e^(−2h))·D_i + ½·(1 − e^(−2h))·(D_i − D_{i−1})/r
    /// + σ_{i+1}·√(1 − e^(−2h))·ξ_i, where 1 − e^(−2h) = ∫ 2·e^(2(λ − λ_{i+1})) dλ weighs D exactly and the noise term
    /// is the exact variance of the linear SDE over the step. One evaluation per step.
    /// </summary>
    public static Tensor DpmSolver2MSde(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.DpmSolver2MSde, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// UniPC (Zhao et al. 2023, §3: the UniP-2 predictor with the UniC corrector, data prediction, B(h) = e^h − 1, the
    /// "bh2" variant). The predictor is DPM-Solver++(2M). After each step the model's evaluation at the new point, which the
    /// next step needs anyway, also corrects that point: with φ0 = 1 − e^(−h), φ1 = h − φ0, φ2 = h²/2 − φ1,
    /// x^c_{i+1} = e^(−h)·x_i + φ0·D_i + φ0·Σ_m a_m·(D(t_m) − D_i)/r_m over the previous point (r_1 = (λ_{i−1} − λ_i)/h)
    /// and the new one (r_2 = 1), where a solves Σ_m a_m·r_m^(k−1) = k!·φk/(h^k·φ0) for k = 1, 2 (a = ½ for the first
    /// step's single point). The corrected point continues the trajectory while the evaluation at the uncorrected point
    /// is reused, so the corrector costs nothing; the order rises from 2 to 3. One evaluation per step.
    /// </summary>
    public static Tensor UniPc(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.UniPc, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// DDPM's ancestral step on any decreasing levels (Ho et al. 2020, Algorithm 2): the Bayes posterior
    /// N(μ̃(z_t, D), σ²) between the two levels' ᾱ = 1/(1 + σ²), with σ² = β̃, β or the learned variance, computed in the
    /// variance-preserving variable as the paper writes it. On the levels of trained timesteps it is <see cref="SamplerKind.Ddpm"/>.
    /// </summary>
    public static Tensor Ddpm(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.Ddpm, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// DDIM's step on any levels (Song et al. 2021, eq. 12), in the variance-preserving variable, with η of
    /// <see cref="SamplerOptions.Eta"/>; at η = 0 it is <see cref="Euler"/> written in z.
    /// </summary>
    public static Tensor Ddim(ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null) =>
        Run(SamplerKind.Ddim, denoiser, noise, sigmas, stepNoise, options, onStep);

    /// <summary>
    /// Runs the sampler of <paramref name="kind"/> (its row of <see cref="SamplerTable"/>) through
    /// <see cref="SamplerDriver.Run"/>, after checking that it accepts the options given, and that it draws no noise of
    /// its own when the levels increase (only the deterministic samplers run backwards).
    /// </summary>
    public static Tensor Run(SamplerKind kind, ISigmaDenoiser denoiser, Tensor noise, IReadOnlyList<double> sigmas, StepNoise stepNoise,
        SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        var row = SamplerTable.Of(kind);
        SamplerTable.CheckOptions(options with { Kind = kind });
        if (NoiseLevels.IsIncreasing(sigmas) && !row.IsDeterministic(options))
            throw new DiffuseException($"{row.Name} draws noise at every step; only a deterministic sampler can run from low to high noise.");
        using var rule = row.CreateRule();
        return SamplerDriver.Run(rule, denoiser, noise, sigmas, stepNoise, options, onStep);
    }

    /// <summary>
    /// Network evaluations (NFE) the sampler of <paramref name="kind"/> makes on <paramref name="sigmas"/>: one per step,
    /// except Heun, which makes two on every step that ends above σ = 0 and starts below σ = ∞.
    /// </summary>
    public static int FunctionEvaluations(SamplerKind kind, IReadOnlyList<double> sigmas) =>
        SamplerTable.Of(kind).FunctionEvaluations(NoiseLevels.Validate(sigmas));
}
