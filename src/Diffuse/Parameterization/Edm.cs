using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Parameterization;

/// <summary>
/// The EDM formulation's settings (Karras et al. 2022, Table 1 and §5); saved with a model trained by it.
/// </summary>
/// <param name="SigmaData">σ_data, the standard deviation of the data the preconditioning assumes (0.5 for images in [−1, 1]; 1 for standardised tables).</param>
/// <param name="PMean">P_mean, the mean of ln σ of the training noise levels.</param>
/// <param name="PStd">P_std, the standard deviation of ln σ of the training noise levels.</param>
/// <param name="SigmaMin">σ_min, the lowest noise level a sampler visits.</param>
/// <param name="SigmaMax">σ_max, the highest noise level a sampler visits (the prior is N(0, σ_max²·I)).</param>
public sealed record EdmConfig(double SigmaData = 0.5, double PMean = -1.2, double PStd = 1.2, double SigmaMin = 0.002, double SigmaMax = 80)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (!(SigmaData > 0) || double.IsInfinity(SigmaData)) throw new DiffuseException($"σ_data must be positive and finite (got {SigmaData}).");
        if (!double.IsFinite(PMean)) throw new DiffuseException($"P_mean must be a finite number (got {PMean}).");
        if (!(PStd > 0) || double.IsInfinity(PStd)) throw new DiffuseException($"P_std must be positive and finite (got {PStd}).");
        if (!(SigmaMin > 0) || !(SigmaMax > SigmaMin) || double.IsInfinity(SigmaMax))
            throw new DiffuseException($"the EDM noise range needs 0 < σ_min < σ_max < ∞ (got σ_min = {SigmaMin}, σ_max = {SigmaMax}).");
    }

    /// <summary>
    /// A discrete schedule of <paramref name="timesteps"/> noise levels spaced uniformly in log σ from σ_min to σ_max
    /// (ᾱ_n = 1/(1 + σ_n²)), so that the timestep samplers (DDPM, DDIM), the variational bound and the σ-space samplers'
    /// spacings (which read σ_min and σ_max off the schedule) all work on a model trained with EDM.
    /// </summary>
    public NoiseSchedule Schedule(int timesteps = 1000)
    {
        Validate();
        if (timesteps < 2) throw new DiffuseException($"an EDM schedule needs at least two timesteps (got {timesteps}).");
        double logMin = Math.Log(SigmaMin), logMax = Math.Log(SigmaMax);
        var betas = new double[timesteps];
        double previous = 1;
        for (int n = 0; n < timesteps; n++)
        {
            double sigma = Math.Exp(logMin + (logMax - logMin) * n / (timesteps - 1));
            double alphaBar = NoiseSchedule.AlphaBarOfSigma(sigma);
            betas[n] = 1 - alphaBar / previous;
            previous = alphaBar;
        }
        return NoiseSchedule.FromBetas(betas);
    }
}

/// <summary>
/// The preconditioning of Karras et al. 2022, Table 1 ("EDM" column): the denoiser D(x; σ) = c_skip(σ)·x +
/// c_out(σ)·F(c_in(σ)·x; c_noise(σ)) wraps a raw network F so that its input and its training target both have unit
/// variance at every σ. Notation map: σ the noise level of the variance-exploding state x = x0 + σ·ε; σ_d = σ_data.
/// Each function has a scalar form (one σ for a batch, as samplers use it) and a tensor form (one σ per row, as training uses it).
/// </summary>
public static class EdmPreconditioning
{
    /// <summary>Karras et al. 2022, Table 1: c_skip(σ) = σ_d²/(σ² + σ_d²), the share of the input kept in D (→ 1 as σ → 0).</summary>
    public static double CSkip(double sigma, double sigmaData) => sigmaData * sigmaData / (sigma * sigma + sigmaData * sigmaData);

    /// <summary>Karras et al. 2022, Table 1: c_out(σ) = σ·σ_d/√(σ² + σ_d²), the scale of the network's contribution (→ 0 as σ → 0).</summary>
    public static double COut(double sigma, double sigmaData) => sigma * sigmaData / Math.Sqrt(sigma * sigma + sigmaData * sigmaData);

    /// <summary>Karras et al. 2022, Table 1: c_in(σ) = 1/√(σ² + σ_d²), which gives the network's input unit variance.</summary>
    public static double CIn(double sigma, double sigmaData) => 1 / Math.Sqrt(sigma * sigma + sigmaData * sigmaData);

    /// <summary>Karras et al. 2022, Table 1: c_noise(σ) = ¼·ln σ, the conditioning value the network receives instead of a timestep.</summary>
    public static double CNoise(double sigma) => 0.25 * Math.Log(sigma);

    /// <summary>Karras et al. 2022, Table 1: the loss weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)², which makes λ·c_out² = 1.</summary>
    public static double LossWeight(double sigma, double sigmaData) => (sigma * sigma + sigmaData * sigmaData) / Math.Pow(sigma * sigmaData, 2);

    /// <summary>The tensor form of <see cref="CSkip(double, double)"/>, elementwise in <paramref name="sigma"/>.</summary>
    public static Tensor CSkip(Tensor sigma, double sigmaData) => sigmaData * sigmaData / (sigma.square() + sigmaData * sigmaData);

    /// <summary>The tensor form of <see cref="COut(double, double)"/>, elementwise in <paramref name="sigma"/>.</summary>
    public static Tensor COut(Tensor sigma, double sigmaData) => sigma * sigmaData * (sigma.square() + sigmaData * sigmaData).rsqrt();

    /// <summary>The tensor form of <see cref="CIn(double, double)"/>, elementwise in <paramref name="sigma"/>.</summary>
    public static Tensor CIn(Tensor sigma, double sigmaData) => (sigma.square() + sigmaData * sigmaData).rsqrt();

    /// <summary>The tensor form of <see cref="CNoise(double)"/>, elementwise in <paramref name="sigma"/>.</summary>
    public static Tensor CNoise(Tensor sigma) => 0.25 * sigma.log();

    /// <summary>The tensor form of <see cref="LossWeight(double, double)"/>, elementwise in <paramref name="sigma"/>.</summary>
    public static Tensor LossWeight(Tensor sigma, double sigmaData) => (sigma.square() + sigmaData * sigmaData) / (sigma * sigmaData).square();

    /// <summary>
    /// Karras et al. 2022, eq. 7 with Table 1: what the raw network F receives for the variance-exploding state
    /// <paramref name="x"/> [B, ...] at σ per row [B]: the input c_in(σ)·x and the conditioning c_noise(σ) (float32, [B]).
    /// Training and sampling both call this, so the preconditioning is written once.
    /// </summary>
    public static (Tensor Input, Tensor Conditioning) NetworkInputs(Tensor x, Tensor sigma, double sigmaData) =>
        (CIn(PerRow(sigma, x), sigmaData) * x, CNoise(sigma.to_type(ScalarType.Float64)).to_type(ScalarType.Float32));

    /// <summary>Karras et al. 2022, eq. 7: the denoiser D(x; σ) = c_skip(σ)·x + c_out(σ)·F for the network's output F, σ per row [B].</summary>
    public static Tensor Denoised(Tensor x, Tensor output, Tensor sigma, double sigmaData)
    {
        var s = PerRow(sigma, x);
        return CSkip(s, sigmaData) * x + COut(s, sigmaData) * output;
    }

    /// <summary>σ [B] reshaped to [B, 1, …, 1] so that it broadcasts against <paramref name="like"/> [B, ...].</summary>
    internal static Tensor PerRow(Tensor sigma, Tensor like)
    {
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return sigma.reshape(shape).to_type(like.dtype);
    }
}

/// <summary>
/// Training in the EDM formulation (Karras et al. 2022, §5 and Table 1), as pure functions of one batch. Notation map:
/// x0 the data [B, ...]; σ the noise level per row [B]; n = σ·ε the noise; F the raw network output. A training step:
/// <code>
/// var sigma = EdmTraining.SampleSigma(normal, config);                  // normal: [B] standard normal draws
/// var noise = EdmTraining.Noise(eps, sigma);                            // eps: [B, ...] standard normal draws
/// var (input, conditioning) = EdmPreconditioning.NetworkInputs(x0 + noise, sigma, config.SigmaData);
/// var output = network.call(input, conditioning);
/// var perExample = EdmTraining.Loss(output, x0, noise, sigma, config.SigmaData);   // [B]
/// </code>
/// </summary>
public static class EdmTraining
{
    /// <summary>
    /// Karras et al. 2022, Table 1 ("EDM" training distribution): ln σ ~ N(P_mean, P_std²), i.e.
    /// σ = exp(P_mean + P_std·<paramref name="normal"/>) for standard normal draws supplied by the caller (so the
    /// caller's seeded noise decides σ). Same shape and dtype as <paramref name="normal"/>.
    /// </summary>
    public static Tensor SampleSigma(Tensor normal, EdmConfig config) => (config.PMean + config.PStd * normal).exp();

    /// <summary>The noise n = σ·ε for standard normal <paramref name="eps"/> [B, ...] and σ per row [B].</summary>
    public static Tensor Noise(Tensor eps, Tensor sigma) => EdmPreconditioning.PerRow(sigma, eps) * eps;

    /// <summary>
    /// Karras et al. 2022, eq. 8: the effective training target of the raw network,
    /// F_target = (x0 − c_skip(σ)·(x0 + n))/c_out(σ); with this output the denoiser returns x0 exactly.
    /// </summary>
    public static Tensor Target(Tensor x0, Tensor noise, Tensor sigma, double sigmaData)
    {
        var s = EdmPreconditioning.PerRow(sigma, x0);
        return (x0 - EdmPreconditioning.CSkip(s, sigmaData) * (x0 + noise)) / EdmPreconditioning.COut(s, sigmaData);
    }

    /// <summary>
    /// Karras et al. 2022, eq. 8 (the preconditioned form of eq. 2): the per-example loss
    /// λ(σ)·c_out(σ)²·mean‖F − F_target‖² over the non-batch dimensions, which equals λ(σ)·mean‖D(x0 + n; σ) − x0‖².
    /// Returns [B].
    /// </summary>
    public static Tensor Loss(Tensor output, Tensor x0, Tensor noise, Tensor sigma, double sigmaData)
    {
        using var scope = NewDisposeScope();
        var cOut = EdmPreconditioning.COut(sigma, sigmaData);
        var weight = EdmPreconditioning.LossWeight(sigma, sigmaData) * cOut.square();
        var error = (output - Target(x0, noise, sigma, sigmaData)).square().flatten(1).mean(new long[] { 1 });
        return (weight * error).MoveToOuterDisposeScope();
    }
}
