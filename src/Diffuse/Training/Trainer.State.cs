using System.Security.Cryptography;
using Diffuse.Checkpoints;
using Diffuse.Configuration;
using Diffuse.Distributed;
using Diffuse.Formulations;
using static TorchSharp.torch;

namespace Diffuse.Training;

// The training state as files and messages: the checkpoint (through ModelFolder), its checksum, and the broadcast that
// makes every rank's state rank 0's.
public sealed partial class Trainer
{
    /// <summary>
    /// Writes the checkpoint to <paramref name="folder"/> as one atomic unit (<see cref="ModelFolder.Write"/>): EMA
    /// weights, resume state, loss history, then the config that names their digests. Only rank 0 writes; on other
    /// ranks this does nothing (every rank holds the same state).
    /// </summary>
    /// <exception cref="DiffuseException">The folder cannot be written (the previous checkpoint is intact).</exception>
    public void Save(string folder)
    {
        if (_collective.Rank != 0) return;
        var metadata = new Dictionary<string, string> { ["format"] = DiffusionModelConfig.FormatName, ["step"] = Step.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        var target = new ModelFolder(folder);
        using (var scope = NewDisposeScope())
        {
            target.Write(Config,
                path => Safetensors.Save(path, OnCpu(Ema.state_dict()), metadata),
                path =>
                {
                    var state = new Dictionary<string, Tensor>();
                    foreach (var (name, value) in Network.state_dict()) state["network." + name] = value.cpu();
                    foreach (var (name, value) in Ema.state_dict()) state["ema." + name] = value.cpu();
                    foreach (var (name, value) in _optimizer.State()) state["adamw." + name] = value.cpu();
                    if (_importance is not null) state[ImportanceStateKey] = _importance.ToState();
                    Safetensors.Save(path, state,
                        new Dictionary<string, string>(metadata) { ["adamw_step"] = _optimizer.StepCount.ToString(System.Globalization.CultureInfo.InvariantCulture) });
                },
                ModelFolder.LossCsv(_losses, _quartileLosses));
        }
        _ownFolder = Path.GetFullPath(folder);
        _savedStep = Step;
        CheckpointWritten?.Invoke(this, new CheckpointWrittenEventArgs(folder, Step));
    }

    private static Dictionary<string, Tensor> OnCpu(Dictionary<string, Tensor> state) => state.ToDictionary(kv => kv.Key, kv => kv.Value.cpu());

    /// <summary>
    /// SHA-256 (first 16 hex digits) of the whole training state: step, optimizer step count, and the bytes of every
    /// tensor of the network, the EMA and the optimizer, and the importance sampler's history. Equal on every rank of a
    /// correct data-parallel run.
    /// </summary>
    public string StateChecksum()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(BitConverter.GetBytes((long)Step));
        hash.AppendData(BitConverter.GetBytes(_optimizer.StepCount));
        using (var scope = NewDisposeScope())
        {
            foreach (var (_, value) in Network.state_dict()) hash.AppendData(value.cpu().contiguous().bytes);
            foreach (var (_, value) in Ema.state_dict()) hash.AppendData(value.cpu().contiguous().bytes);
            foreach (var (_, value) in _optimizer.State()) hash.AppendData(value.cpu().contiguous().bytes);
            if (_importance is not null) hash.AppendData(_importance.ToState().bytes);
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..16].ToLowerInvariant();
    }

    /// <summary>
    /// Makes every rank's state rank 0's: step, optimizer step count, loss history, every tensor of the network, the
    /// EMA and the optimizer, and the importance sampler's history (one broadcast each, in the same order on every rank).
    /// </summary>
    private void BroadcastState()
    {
        if (_collective.Size == 1) return;
        Span<long> header = stackalloc long[] { Step, _optimizer.StepCount, _losses.Count };
        const int row = 2 + Quartiles;
        _collective.Broadcast(header);
        using (var scope = NewDisposeScope())
        {
            foreach (var (_, value) in Network.state_dict()) _collective.Broadcast(value);
            foreach (var (_, value) in Ema.state_dict()) _collective.Broadcast(value);
            foreach (var (_, value) in _optimizer.State()) _collective.Broadcast(value);
            if (_importance is not null)
            {
                var importance = _importance.ToState().contiguous();
                _collective.Broadcast(importance);
                _importance = TimestepImportance.FromState(importance);
            }
        }
        var history = new double[row * header[2]];
        if (_collective.Rank == 0)
            for (int i = 0; i < _losses.Count; i++)
            {
                (history[row * i], history[row * i + 1]) = (_losses[i].Step, _losses[i].Loss);
                _quartileLosses[i].CopyTo(history, row * i + 2);
            }
        _collective.Broadcast(history.AsSpan());
        Step = (int)header[0];
        _optimizer.StepCount = header[1];
        Config = Config with { Step = Step };
        _losses.Clear();
        _quartileLosses.Clear();
        for (int i = 0; i < header[2]; i++)
        {
            _losses.Add(((int)history[row * i], history[row * i + 1]));
            _quartileLosses.Add(history.AsSpan(row * i + 2, Quartiles).ToArray());
        }
    }

    private void LoadState(string folder)
    {
        var files = new ModelFolder(folder);
        string path = files.Resolve(Config, ModelFolder.ResumeFile);
        if (!File.Exists(path)) throw new DiffuseException($"'{folder}' has no {ModelFolder.ResumeFile}: it holds weights only and cannot be resumed. Train again without {Param.Of("Trainer.Resume")}.");
        var header = Safetensors.ReadHeader(path);
        int step = int.Parse(header.Metadata.GetValueOrDefault("step", "-1"), System.Globalization.CultureInfo.InvariantCulture);
        if (step != Config.Step)
            throw new DiffuseException($"'{folder}' is inconsistent: config.json says step {Config.Step} but {ModelFolder.ResumeFile} holds step {step}, and the folder records no digests to repair it from (it was written by an earlier version). Train again without {Param.Of("Trainer.Resume")}.");
        using var scope = NewDisposeScope();
        var state = Safetensors.Load(path);
        StateDicts.LoadInto(Network, Prefixed(state, "network."), path);
        StateDicts.LoadInto(Ema, Prefixed(state, "ema."), path);
        long adamStep = long.Parse(header.Metadata.GetValueOrDefault("adamw_step", "0"), System.Globalization.CultureInfo.InvariantCulture);
        _optimizer.Load(Prefixed(state, "adamw."), adamStep, path);
        if (_importance is not null)
        {
            if (!state.TryGetValue(ImportanceStateKey, out var history))
                throw new DiffuseException($"{path} has no '{ImportanceStateKey}', which a run with importance sampling saves; it was not written by this run. Train again without {Param.Of("Trainer.Resume")}.");
            if (history.dim() != 2 || history.shape[0] != Schedule.Timesteps)
                throw new DiffuseException($"{path}: '{ImportanceStateKey}' has shape [{string.Join(", ", history.shape)}] but the schedule has {Schedule.Timesteps} timesteps. Train again without {Param.Of("Trainer.Resume")}.");
            _importance = TimestepImportance.FromState(history);
        }
        Step = step;
        _savedStep = step;
        var (losses, quartiles) = ModelFolder.ReadLosses(files.Resolve(Config, ModelFolder.LossFile), step, Quartiles);
        _losses.Clear();
        _losses.AddRange(losses);
        _quartileLosses.Clear();
        _quartileLosses.AddRange(quartiles);
    }

    /// <summary>The key of the state of <see cref="TimestepImportance"/> in <see cref="ModelFolder.ResumeFile"/>.</summary>
    private const string ImportanceStateKey = "importance.history";

    private static Dictionary<string, Tensor> Prefixed(Dictionary<string, Tensor> state, string prefix) =>
        state.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
}
